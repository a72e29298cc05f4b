"""The engine: what moves frames from the decoder through the stages to the encoder.

`runner` runs a task (or one segment of it) with the frame loop of `loop`, which hands each
frame to observers (digest, progress, saves); `chain` applies the stages; `framemap` and
`framepool` decide where they run (inline, a thread pool, a process pool over `shm`);
`supervisor` starts and watches worker processes; `helpers` are the note's progress and save
threads, writing what `saves` writes; `watchdog` fails a run whose frames stop moving.
"""

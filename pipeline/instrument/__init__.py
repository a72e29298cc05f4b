"""Instruments: timelines in Chrome's trace format (`trace`), the CPU time and memory of each
process (`procstats`), and injected faults for the tests (`faults`)."""

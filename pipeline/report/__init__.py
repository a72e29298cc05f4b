"""What a run reports: results as numbers in dataclasses (`results`), the observers of its
progress (`reporters`), the machine it ran on (`environment`), and the report built from a
plan and its tasks' results (`build`). Formatting happens only at the edges."""

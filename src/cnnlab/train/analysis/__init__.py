"""Reading runs and choosing the next one: diagnosis, the advice checker, tuning."""

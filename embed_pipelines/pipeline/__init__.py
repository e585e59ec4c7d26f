"""The incremental loop, its steps, the table loader and the plan: the pipeline without Dagster."""

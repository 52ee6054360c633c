"""Running a matrix: build, plan, environment, training, evaluation, the driver (the one writer), the runner,
the adaptive protocol, dry runs, verification and the executors."""

"""Where a run's numbers and pictures go (`logger=`, configs/logger/): the logger contract, TensorBoard, the
hyper-parameters, and the console."""

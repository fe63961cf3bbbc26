"""Training and running models: inference, the ONNX export, weights files, training speed, augmentation, HOG + SVM, the Lightning fit, the plan of runs a profile holds, and run archives."""

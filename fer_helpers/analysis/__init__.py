"""What the runs say: the paper's claims judged, the ablation, Grad-CAM, accuracy against cost, and the figures."""

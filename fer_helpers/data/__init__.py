"""What is read and stored: FER-2013 and its checks, the synthetic faces, HOG features, the FER+ votes, and the run folders that hold every result."""

"""Training of V2V-PoseNet and of the reference-point refinement network (paper secs. 4, 6.3, 7)."""

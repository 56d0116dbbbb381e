"""Rewrites of the TFLite graph that let XNNPACK run it whole, each verified before it is kept."""

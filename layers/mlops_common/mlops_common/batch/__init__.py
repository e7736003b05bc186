"""Batch predictions: files under inference/<dataset>/ scored by the dataset's model with Batch Transform."""

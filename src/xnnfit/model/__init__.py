"""The model as given: sources, input specs, sample data, recipes, conversion to a .tflite artifact."""

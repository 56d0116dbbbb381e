"""What the runtime did: which nodes XNNPACK took (observed or predicted) and their Keras layers."""

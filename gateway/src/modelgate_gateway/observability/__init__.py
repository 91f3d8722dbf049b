"""What the gateway tells about itself: metrics, cost, request log."""

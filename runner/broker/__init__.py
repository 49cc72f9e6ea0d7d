"""The simulated broker: order handling (paper.py), fill prices (fills.py), commissions (fees.py)."""

"""Drop-in PyTorch layers for FA, DFA and sign-symmetry (issue 7)."""

"""falab: a laboratory for learning rules of neural networks (BP/GD, FA, DFA, FA*, sign symmetry).

Layers of the package (imports flow one way, top to bottom):

- ``functional``  pure tensor maths: activations, losses, forward trace, the backward kernels
- ``models``      model families presented to the rules as layered networks (MLP, deep linear, ...)
- ``theory``      closed-form predictors (independent oracle; imports no simulation code)
- ``rules``       learning rules: frozen configs with init / pure update
- ``dynamics``    exact flows (scipy DOP853) and discrete schemes (Euler, SGD), ensembles as leading dims
- ``instruments`` measurements: conserved quantities, exact Euler identities, alignment
- ``nn``          torch.nn layers whose backward calls the same kernels
- ``experiments`` the papers' experiments and the claims engine; ``report`` and ``cli`` on top
"""

__version__ = "0.1.0"

"""The model by composition: `VAE(encoder, decoder, prior, likelihood)`, each a small module of its own file.

torch.distributions' argument validation is switched off: it checks every parameter tensor on every construction
(a host sync per step on a GPU) and turns a diverged model into a bare ValueError deep inside a distribution; the
trainer checks the loss and gradient for non-finite values itself and stops with a clear message.
"""

import torch.distributions as _td

_td.Distribution.set_default_validate_args(False)

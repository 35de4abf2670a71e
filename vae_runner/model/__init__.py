"""The model by composition: `VAE(encoder, decoder, prior, likelihood)`, each a small module of its own file.

Every torch.distributions object built here passes `validate_args=False`: validation checks every parameter tensor
on every construction (a host sync per step on a GPU) and turns a diverged model into a bare ValueError deep inside a
distribution; the trainer checks the loss and gradient for non-finite values itself and stops with a clear message.
Only our own distributions are affected: the process-wide default is left as the user set it.
"""

"""InterAct runtime: the deployable core (formats, features, motion, sampler, backends, streaming, sinks).

Never imports torch, ``training`` or ``export`` (DESIGN section 1).
"""

__version__ = "0.1.0"

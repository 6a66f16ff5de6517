"""Evaluation metrics (pure numpy/scipy) and the torch-checkpoint adapter ``training.evaluate`` runs the engine on.

- ``face``: lip error (blendshape LVE), FDD, bilabial closure, listener reaction.
- ``body``: FID_g, FID_k, Div_g, Div_k, Div_sample (audio2photoreal), beat consistency (EMAGE), foot skating, jerk,
  action agreement, interaction distances; the pose space they share (forward kinematics of engine output).
- ``liveliness``: a living face as real captures measure it: blinks (rate, peak, width), gaze shifts, brow spread,
  head nods and sway, channels that move (``python -m training.analyze``); ``curves`` holds its curve helpers.
- ``adapter``: a weights-only checkpoint behind the runtime ``Model`` surface (imports torch; import it directly).
"""

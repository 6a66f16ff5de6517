"""Shared facts of the system clock and the speech features, in one place (DESIGN section 2).

Training, export and serving all read these, so they can never disagree.
"""

FPS = 30  # output clock: motion and face frames per second
SAMPLE_RATE = 16_000  # Hz, PCM inside the system, per speaker, mono
SAMPLES_PER_FRAME = SAMPLE_RATE / FPS  # 533.33 samples of audio per output frame (not an integer)

# Log-mel speech features (librosa-compatible Slaney mel filters, natural log).
N_MELS = 80
WIN_LENGTH = 400  # samples: 25 ms window at 16 kHz
HOP_LENGTH = 160  # samples: 10 ms hop at 16 kHz -> 100 mel frames per second
N_FFT = 512  # next power of two above WIN_LENGTH
FMIN = 0.0  # Hz
FMAX = SAMPLE_RATE / 2  # 8000 Hz
LOG_FLOOR = 1e-6  # added before the log so silence is finite: log(1e-6) = -13.8
MEL_FPS = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second

# Client audio the server accepts before resampling to SAMPLE_RATE (DESIGN section 2).
MIN_INPUT_RATE = 8_000
MAX_INPUT_RATE = 48_000

SPEAKERS = ("A", "B")  # the two people of a session, in this order everywhere
ACTIONS = ("sit", "walk", "stand")  # per-frame action labels (paper 4.2), index = class id
DEFAULT_ACTION = "stand"

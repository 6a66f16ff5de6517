# The two commands of the README: `make demo` and `make test`. Each bootstraps .venv and system packages.
PY := .venv/bin/python

.PHONY: demo test lint scale-test bundle corpus train evaluate checkpoints export clean

demo:
	@scripts/bootstrap.sh view,mic
	$(PY) -m runtime.mic_demo --demo

test:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m pytest

# 3 replicas behind nginx, 6 sessions of real speech at real time; kill -9 one replica, SIGTERM another (~1 min)
scale-test:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m deploy.scale_test

lint:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The default bundle from scratch: corpus -> training -> evaluation -> export (about 5 h on 2 CPU cores). Training
# also reads the real voices of ../shared/external (training.data.real; aligned once into data/cache).
# `make export` alone re-exports runtime/assets/default from the committed export/checkpoints (about a minute).
CKPT := export/checkpoints
EVAL := runs/eval
bundle: corpus train evaluate checkpoints export

corpus:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m training.data.synthesize --out data/corpus --minutes 60 --seed 0

train:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m training.train --config training/configs/face.yaml
	$(PY) -m training.train --config training/configs/face_lip.yaml
	$(PY) -m training.train --config training/configs/face_real.yaml
	$(PY) -m training.train --config training/configs/face_k1.yaml
	$(PY) -m training.train --config training/configs/face_regression.yaml
	$(PY) -m training.train --config training/configs/body.yaml
	$(PY) -m training.train --config training/configs/body_motion.yaml
	$(PY) -m training.train --config training/configs/body_single.yaml

evaluate:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m training.evaluate --model face --checkpoint runs/face_real/face_real.pt --max-seconds 60 --out $(EVAL) \
		--baseline-checkpoint runs/face_lip/face_lip.pt runs/face/face.pt runs/face_regression/face_regression.pt \
		--real-speech
	$(PY) -m training.evaluate --model face --checkpoint runs/face_k1/face_k1.pt --steps 1 --block 3 --max-seconds 60 \
		--out $(EVAL)/k1 --baseline-checkpoint runs/face_real/face_real.pt
	$(PY) -m training.evaluate --model body --checkpoint runs/body_motion/body_motion.pt --max-seconds 60 \
		--out $(EVAL) --baseline-checkpoint runs/body/body.pt runs/body_single/body_single.pt --real-speech

checkpoints:
	mkdir -p $(CKPT) $(CKPT)/eval
	cp runs/face_real/face_real.pt runs/face_k1/face_k1.pt runs/body_motion/body_motion.pt $(CKPT)/
	cp $(EVAL)/eval_face.json $(EVAL)/eval_body.json $(CKPT)/eval/
	cp $(EVAL)/k1/eval_face.json $(CKPT)/eval/eval_face_k1.json

export:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m export.onnx --face $(CKPT)/face_real.pt --body $(CKPT)/body_motion.pt --steps 2 4 \
		--students face:1=$(CKPT)/face_k1.pt --int8 face_k1 body_lower_step body_upper_step --out runtime/assets/default --name interact-default \
		--evaluation $(CKPT)/eval/eval_face.json $(CKPT)/eval/eval_body.json $(CKPT)/eval/eval_face_k1.json \
		--card export/MODEL_CARD.md

clean:
	rm -rf .venv .pytest_cache .ruff_cache

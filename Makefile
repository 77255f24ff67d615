# Usual targets; everything goes through tools/bootstrap.py so a clean clone works.
PY := .venv/bin/python

.PHONY: demo test faults serve lint format migrate-check worker beat web bench-pipeline

demo:          ## the service and a demo on the embedded default (SQLite, filesystem broker)
	python3 tools/bootstrap.py demo

test:          ## the test suite on PostgreSQL + Redis (started if not running), fault suite at reduced size
	python3 tools/bootstrap.py test

faults:        ## the fault suite alone at full size: 50,000-file campaigns (about 9 minutes here)
	IDDS_FAULT_FILES=50000 python3 tools/bootstrap.py test tests/faults -m faults

serve:         ## web + worker + beat with the configuration in the environment
	python3 tools/bootstrap.py serve

lint:          ## ruff, formatting, and the architecture contracts (import-linter)
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && .venv/bin/lint-imports

format:
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

migrate-check:
	$(PY) manage.py makemigrations --check --dry-run

web:
	$(PY) -m gunicorn idds_site.wsgi -b 0.0.0.0:8000 -w 2

worker:        ## every queue; add QUEUES=clerk,transformer to pick some
	$(PY) -m celery -A idds_site worker -l INFO $(if $(QUEUES),-Q $(QUEUES))

beat:
	$(PY) -m celery -A idds_site beat -l INFO -s var/celerybeat-schedule

bench-pipeline:
	$(PY) bench/pipeline.py

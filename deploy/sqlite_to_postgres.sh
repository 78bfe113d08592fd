#!/bin/sh
# Move a portal's data from SQLite to PostgreSQL (docs/deploy.md, "Moving up"), nothing lost:
# users, teams, keys (still encrypted: keep MEMPORTAL_FERNET_KEYS), videos, their timelines,
# callbacks, the audit trail and the task queue, so queued videos are still sent.
#
#   FROM=sqlite:////srv/memportal/var/memportal.sqlite3 TO=postgres://memportal@db.internal/memportal \
#     deploy/sqlite_to_postgres.sh
#
# Stop every process of the portal first (web, workers, clock). TO must be an empty database
# (created, nothing in it). Run from the portal's folder with its environment (the env file).
set -eu
: "${FROM:?set FROM to the SQLite database URL (sqlite:////path/to/memportal.sqlite3)}"
: "${TO:?set TO to the PostgreSQL database URL (postgres://user@host:5432/name)}"
PY=${PYTHON:-python}
work=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/memportal-move.XXXXXX")
trap 'rm -rf "$work"' EXIT
# What every table holds, one line per model, to compare before and after.
COUNT='from django.apps import apps
for model in sorted(apps.get_models(), key=lambda m: m._meta.label):
    print(model._meta.label, model._base_manager.count())'

echo "== bringing both databases to the same migrations"
DATABASE_URL="$FROM" $PY manage.py migrate --no-input -v0
DATABASE_URL="$TO" $PY manage.py migrate --no-input -v0
echo "== copying the rows"
# contenttypes and permissions are made by migrate on the target: rows that point at them name
# them by natural key. Every row keeps its own primary key (no --natural-primary): user ids are
# also stored as plain values (sessions, task arguments, admin log entries).
DATABASE_URL="$FROM" $PY manage.py remove_stale_contenttypes --no-input -v0
DATABASE_URL="$FROM" $PY manage.py dumpdata --all --natural-foreign \
  -e contenttypes -e auth.permission --output "$work/portal.json"
DATABASE_URL="$TO" $PY manage.py loaddata "$work/portal.json" -v0
echo "== comparing what each table holds"
DATABASE_URL="$FROM" $PY manage.py shell -v0 -c "$COUNT" > "$work/from.txt"
DATABASE_URL="$TO" $PY manage.py shell -v0 -c "$COUNT" > "$work/to.txt"
if ! diff "$work/from.txt" "$work/to.txt"; then
  echo "The row counts differ (above: < SQLite, > PostgreSQL). Do not start the portal on PostgreSQL." >&2
  exit 1
fi
echo "Moved: $(awk '{ n += $2 } END { print n }' "$work/to.txt") rows in $(wc -l < "$work/to.txt") tables."
echo "Set DATABASE_URL to the new database (TO) in the portal's environment and start its processes."

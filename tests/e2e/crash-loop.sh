# A few iterations of the crash-safety loop (tests/crashloop.sh: kill -9
# during HTTP writes and during ingest, a torn log tail, a flipped snapshot
# byte); `make crashloop` and `make fuzz` run 200.
exec bash tests/crashloop.sh "${CRASHLOOP_ITERATIONS:-6}"

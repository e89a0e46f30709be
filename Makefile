# The two commands of the README.
.PHONY: run test

# Start healthstream embedded (no Kafka): ingest, processors, /metrics on 127.0.0.1:8080.
run:
	./ops/run.sh

# Install prerequisites and run every test (formatting, lints, unit, conformance, end to end).
test:
	./ops/test.sh

# broadband Makefile. Targets are owned by different parts of the project; edit only yours.

.PHONY: demo lab-test

# 8 network-namespace clients with 1% loss receive a 256 MiB image (root; installs deps, builds).
demo:
	bash lab/demo.sh

# Lab integration tests (root): broadcast/multicast, loss, late joiner, dead client, ...
lab-test:
	bash lab/run-tests.sh

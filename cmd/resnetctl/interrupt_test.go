package main

import (
	"os"
	"testing"
)

// childEnv makes the test binary run resnetctl's main instead of the tests
// (TestMain), so that tests can signal a real resnetctl process. The signal
// tests themselves are in train_run_test.go (TestTrainSignalResumesExactly,
// TestTrainSecondProcessRefused).
const childEnv = "RESNETCTL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], defaultStreams()))
	}
	os.Exit(m.Run())
}

package main

import (
	"testing"
	"time"
)

// TestRunFor: fast models run for the asked time; a slow model at many
// clients runs long enough for its queue to turn over ten times.
func TestRunFor(t *testing.T) {
	for _, tc := range []struct {
		d       time.Duration
		clients int
		imgs    float64
		want    time.Duration
	}{
		{10 * time.Second, 64, 5000, 10 * time.Second}, // ResNet-20
		{10 * time.Second, 64, 32, 20 * time.Second},   // ResNet-50: 2 s a request
		{10 * time.Second, 1, 32, 10 * time.Second},
		{10 * time.Second, 64, 0, 10 * time.Second}, // no bench figure
	} {
		if got := runFor(tc.d, tc.clients, tc.imgs); got != tc.want {
			t.Errorf("runFor(%v, %d clients, %g img/s) = %v, want %v", tc.d, tc.clients, tc.imgs, got, tc.want)
		}
	}
}

package proxy

import (
	"strings"
	"testing"
)

// TestClassOf: the length-indexed classification agrees with the lists it
// is built from, in any case, and classifies nothing else.
func TestClassOf(t *testing.T) {
	lists := []struct {
		names []string
		class fieldClass
	}{
		{hopByHop[:], classHop},
		{droppedFromAnyPeer[:], classDroppedAny},
		{requestOverrides[:], classDroppedAny},
		{droppedFromUntrusted[:], classDroppedUntrusted},
	}
	for _, l := range lists {
		for _, n := range l.names {
			for _, spelled := range []string{n, strings.ToLower(n), strings.ToUpper(n)} {
				if c := classOf([]byte(spelled)); c&l.class == 0 {
					t.Errorf("classOf(%q) = %b, want bit %b", spelled, c, l.class)
				}
			}
		}
	}
	for _, n := range []string{"", "Host", "X-Api-Key", "Connectio", "Connection2", "X-Request-Ix", "Upgrade-Insecure-Requests", "X_Request_Id", strings.Repeat("a", 200)} {
		if c := classOf([]byte(n)); c != 0 {
			t.Errorf("classOf(%q) = %b, want 0", n, c)
		}
	}
}

// BenchmarkClassOf: one request's worth of field names classified.
func BenchmarkClassOf(b *testing.B) {
	names := [][]byte{[]byte("Host"), []byte("User-Agent"), []byte("X-Api-Key"), []byte("Accept"), []byte("X-Forwarded-For"), []byte("Connection")}
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range names {
			_ = classOf(n)
		}
	}
}

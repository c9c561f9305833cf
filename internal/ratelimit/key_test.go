package ratelimit

import "testing"

func TestClientKey(t *testing.T) {
	tests := []struct {
		name, ip, want string
	}{
		{"IPv4 stays whole", "203.0.113.7", "203.0.113.7"},
		{"IPv4 neighbours differ", "203.0.113.8", "203.0.113.8"},
		{"IPv6 grouped by /64", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"another address in the same /64", "2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"the next /64 is another client", "2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"uncompressed spelling", "2001:0db8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2::/64"},
		{"zone ignored", "fe80::1%eth0", "fe80::/64"},
		{"IPv4-mapped IPv6 is the IPv4 address", "::ffff:203.0.113.7", "203.0.113.7"},
		{"loopback IPv6", "::1", "::/64"},
		{"not an address", "@", "@"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientKey(tt.ip); got != tt.want {
				t.Errorf("ClientKey(%q) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
}

// A host rotating through its /64 gets one bucket, not one per address.
func TestIPv6RotationSharesOneBucket(t *testing.T) {
	l, _ := newTestLimiter(t, 1, 3, 1000)
	allowed := 0
	for i := range 100 {
		ip := "2001:db8:dead:beef:" + string("0123456789abcdef"[i%16]) + "::" + string("0123456789abcdef"[i/16])
		if ok, _ := l.Allow(ClientKey(ip)); ok {
			allowed++
		}
	}
	if allowed != 3 || l.Len() != 1 {
		t.Errorf("100 addresses of one /64: %d allowed with %d buckets, want 3 allowed with 1 bucket", allowed, l.Len())
	}
}

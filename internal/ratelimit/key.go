package ratelimit

import (
	"net/netip"
	"strings"
)

// ClientKey returns the key under which a client address is limited: an
// IPv4 address as it is, an IPv6 address as its /64 prefix
// ("2001:db8:1:2::/64"). A single IPv6 host usually holds a whole /64 and
// can pick any address in it, so limiting by full address would give it
// 2^64 buckets. An IPv4-mapped IPv6 address counts as the IPv4 address; a
// zone is ignored. A string that is not an IP address (a Unix socket
// peer, say) is returned unchanged.
func ClientKey(ip string) string {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return ip
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}

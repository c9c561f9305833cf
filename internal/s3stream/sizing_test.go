package s3stream

import "testing"

func TestSizingClientMemory(t *testing.T) {
	tests := []struct {
		name        string
		memoryLimit int64
		concurrency int
		set         int64
		want        int64
	}{
		{"default: two parts when above a quarter", 1 << 30, 4, 0, 2 * (204 << 20)},
		{"default: a quarter when above two parts", 8 << 30, 15, 0, 2 << 30},
		{"default: at most memory_limit", 1 << 30, 1, 0, 1 << 30},
		{"set", 1 << 30, 4, 600 << 20, 600 << 20},
		{"off", 1 << 30, 4, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Sizing{MemoryLimit: tt.memoryLimit, Concurrency: tt.concurrency, MaxMemoryPerClient: tt.set}
			if got := s.ClientMemory(); got != tt.want {
				t.Errorf("ClientMemory() = %d, want %d", got, tt.want)
			}
		})
	}
}

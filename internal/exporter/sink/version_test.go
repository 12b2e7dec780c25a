package sink

import "testing"

func infoServer(lines ...string) string {
	s := "# Server\r\n"
	for _, l := range lines {
		s += l + "\r\n"
	}
	return s + "redis_mode:standalone\r\nos:Linux 6.1.0 x86_64\r\n"
}

func TestIDMPDetectionFromInfo(t *testing.T) {
	cases := map[string]struct {
		info        string
		wantVersion string
		wantIDMP    bool
	}{
		"Debian's 7.0 has no IDMP":            {infoServer("redis_version:7.0.15", "redis_git_sha1:00000000"), "7.0.15", false},
		"7.4 has no IDMP":                     {infoServer("redis_version:7.4.2"), "7.4.2", false},
		"8.4 has no IDMP":                     {infoServer("redis_version:8.4.0"), "8.4.0", false},
		"8.6.0 has IDMP with known bugs":      {infoServer("redis_version:8.6.0"), "8.6.0", false},
		"8.6.1 has IDMP with known bugs":      {infoServer("redis_version:8.6.1"), "8.6.1", false},
		"8.6.2 fixed IDMP":                    {infoServer("redis_version:8.6.2"), "8.6.2", true},
		"8.10 compares numerically":           {infoServer("redis_version:8.10.0"), "8.10.0", true},
		"9.0 is newer":                        {infoServer("redis_version:9.0.0"), "9.0.0", true},
		"a release candidate counts":          {infoServer("redis_version:8.6.2-rc1"), "8.6.2-rc1", true},
		"two-part versions parse":             {infoServer("redis_version:8.8"), "8.8", true},
		"Valkey reports an old redis_version": {infoServer("redis_version:7.2.4", "server_name:valkey", "valkey_version:8.1.0"), "7.2.4", false},
		"a fork claiming 9.0 is not trusted":  {infoServer("redis_version:9.0.0", "server_name:keydb"), "9.0.0", false},
		"Redis naming itself is trusted":      {infoServer("redis_version:8.6.2", "server_name:redis"), "8.6.2", true},
		"no version means no IDMP":            {infoServer("redis_mode:standalone"), "", false},
		"garbage means no IDMP":               {infoServer("redis_version:unstable"), "unstable", false},
		"LF line endings parse":               {"# Server\nredis_version:8.6.2\n", "8.6.2", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			version, idmp := parseInfoServer(tc.info)
			if version != tc.wantVersion || idmp != tc.wantIDMP {
				t.Fatalf("parseInfoServer = %q, %v; want %q, %v", version, idmp, tc.wantVersion, tc.wantIDMP)
			}
		})
	}
}

func TestIDMPDetectionFromHello(t *testing.T) {
	cases := map[string]struct {
		reply       any
		wantVersion string
		wantIDMP    bool
	}{
		"RESP3 map from Redis 8.6.2": {map[any]any{"server": "redis", "version": "8.6.2", "proto": int64(3)}, "8.6.2", true},
		"RESP3 map from Redis 7.0":   {map[any]any{"server": "redis", "version": "7.0.15"}, "7.0.15", false},
		"RESP2 list from Redis 9.0":  {[]any{"server", "redis", "version", "9.0.0", "proto", int64(2)}, "9.0.0", true},
		"Valkey's own version":       {map[any]any{"server": "valkey", "version": "9.0.0"}, "9.0.0", false},
		"an unexpected reply":        {"OK", "", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			version, idmp := parseHello(tc.reply)
			if version != tc.wantVersion || idmp != tc.wantIDMP {
				t.Fatalf("parseHello = %q, %v; want %q, %v", version, idmp, tc.wantVersion, tc.wantIDMP)
			}
		})
	}
}

package appliance

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of a [[service]] entry.
const (
	DefaultServiceTimeout = 30 * time.Second
	DefaultCheckInterval  = 5 * time.Second
	DefaultServiceFall    = 3
	DefaultServiceRise    = 2
)

// ServiceConfig is one PBX service that follows the role: started on becoming Master (in the
// order of the file), stopped on becoming Backup (in reverse order), checked while Master.
type ServiceConfig struct {
	Name  string
	Start []string // argument list; Start[0] is an absolute path or a name looked up in PATH
	Stop  []string
	// Check, when set, runs every CheckInterval while this node is Master: exit 0 is healthy.
	Check []string
	// DrainCheck, when set, tells a swap whether calls are in progress: exit 0 none, exit 1
	// some (the first number on its output, when there is one, is the count).
	DrainCheck    []string
	Timeout       time.Duration // for Start, Stop and DrainCheck; Check gets min(Timeout, CheckInterval)
	CheckInterval time.Duration
	Fall          int // consecutive failed checks that make the service unhealthy
	Rise          int // consecutive good checks that make it healthy again
}

// rawService mirrors one [[service]] table of the TOML file. Optional keys are pointers so
// that "absent" and "zero" can be told apart.
type rawService struct {
	Name          *string  `toml:"name"`
	Start         []string `toml:"start"`
	Stop          []string `toml:"stop"`
	Check         []string `toml:"check"`
	DrainCheck    []string `toml:"drain_check"`
	Timeout       *string  `toml:"timeout"`
	CheckInterval *string  `toml:"check_interval"`
	Fall          *int64   `toml:"fall"`
	Rise          *int64   `toml:"rise"`
}

// validateServices checks the [[service]] entries and applies their defaults. Keys are
// reported as service[i].key with i counted from 0, as every other list key of the file.
// Programs are checked for form only (see checkProgram); whether they exist on this machine
// is checked by NewServiceManager, so that a configuration can be validated anywhere.
func validateServices(raw []rawService, p *problems) []ServiceConfig {
	out := make([]ServiceConfig, 0, len(raw))
	seen := map[string]int{}
	for i, r := range raw {
		key := func(k string) string { return fmt.Sprintf("service[%d].%s", i, k) }
		s := ServiceConfig{
			Start:      r.Start,
			Stop:       r.Stop,
			Check:      r.Check,
			DrainCheck: r.DrainCheck,
			Fall:       DefaultServiceFall,
			Rise:       DefaultServiceRise,
		}
		switch {
		case r.Name == nil || strings.TrimSpace(*r.Name) == "":
			p.add(key("name"), "is required: the name events and the status use, e.g. \"asterisk\"")
		case !validServiceName(*r.Name):
			p.add(key("name"), "%q: use letters, digits and . _ - @ (at most 64)", *r.Name)
		default:
			s.Name = *r.Name
			if j, dup := seen[s.Name]; dup {
				p.add(key("name"), "%q is already the name of service[%d]", s.Name, j)
			}
			seen[s.Name] = i
		}
		if len(r.Start) == 0 {
			p.add(key("start"), "is required: the command that starts the service, e.g. [\"systemctl\", \"start\", \"asterisk\"]")
		} else {
			checkProgram(p, key("start"), r.Start)
		}
		if len(r.Stop) == 0 {
			p.add(key("stop"), "is required: the command that stops the service, e.g. [\"systemctl\", \"stop\", \"asterisk\"]")
		} else {
			checkProgram(p, key("stop"), r.Stop)
		}
		if r.Check != nil {
			checkProgram(p, key("check"), r.Check)
		}
		if r.DrainCheck != nil {
			checkProgram(p, key("drain_check"), r.DrainCheck)
		}
		s.Timeout = p.duration(key("timeout"), r.Timeout, DefaultServiceTimeout, 100*time.Millisecond, time.Hour)
		s.CheckInterval = p.duration(key("check_interval"), r.CheckInterval, DefaultCheckInterval, 100*time.Millisecond, time.Hour)
		s.Fall = countKey(p, key("fall"), r.Fall, DefaultServiceFall)
		s.Rise = countKey(p, key("rise"), r.Rise, DefaultServiceRise)
		if r.Check == nil {
			for _, k := range []struct {
				name string
				set  bool
			}{{"check_interval", r.CheckInterval != nil}, {"fall", r.Fall != nil}, {"rise", r.Rise != nil}} {
				if k.set {
					p.add(key(k.name), "has no effect without check")
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// validateNotify checks the keepalived-style notify command ([redundancy] notify). An empty
// or absent list means no notification.
func validateNotify(raw []string, p *problems) []string {
	if len(raw) == 0 {
		return nil
	}
	checkProgram(p, "redundancy.notify", raw)
	return raw
}

// countKey reads an optional fall / rise count, 1..100.
func countKey(p *problems, key string, v *int64, def int) int {
	if v == nil {
		return def
	}
	if *v < 1 || *v > 100 {
		p.add(key, "%d is out of range 1..100", *v)
		return def
	}
	return int(*v)
}

// checkProgram checks the form of an argument list: a non-empty program that is either an
// absolute path or a bare name (looked up in PATH when the daemon starts). A relative path
// such as "./start.sh" is refused: it would depend on the daemon's working directory.
func checkProgram(p *problems, key string, argv []string) {
	if len(argv) == 0 || argv[0] == "" {
		p.add(key, "the program (first element) must not be empty")
		return
	}
	prog := argv[0]
	if strings.ContainsRune(prog, '/') && !filepath.IsAbs(prog) {
		p.add(key, "%q: a program with a / must be an absolute path (or give a bare name found in PATH)", prog)
	}
	for j, a := range argv {
		if strings.ContainsRune(a, 0) {
			p.add(fmt.Sprintf("%s[%d]", key, j), "contains a NUL byte")
		}
	}
}

// resolveProgram finds argv[0] the way the daemon will run it: an absolute path must be an
// executable file, a bare name must be found in PATH. It returns argv with the resolved path.
func resolveProgram(key string, argv []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, nil
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, &ConfigError{Key: key, Problem: fmt.Sprintf("program %q: %v", argv[0], err)}
	}
	out := append([]string{path}, argv[1:]...)
	return out, nil
}

func validServiceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '@'
		if !ok {
			return false
		}
	}
	return true
}

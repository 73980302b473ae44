package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMark is the CPU time the server and this client had used at a moment:
// the difference over a figure says who spent the machine on it.
type cpuMark struct {
	server, client time.Duration
	serverOK       bool
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux kiln runs on.
const clockTick = 10 * time.Millisecond

func (r *runner) cpuNow() cpuMark {
	var m cpuMark
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if r.cfg.PID > 0 {
		m.server, m.serverOK = procCPU(r.cfg.PID)
	}
	return m
}

// procCPU reads utime+stime of pid from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: count after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * clockTick, true
}

// addCPU reports the CPU the server and the client spent per GB moved
// since m: on a small machine the two share the cores, so a figure's
// rate says little about the server alone.
func (r *runner) addCPU(key, what string, m cpuMark, bytes int64) {
	now := r.cpuNow()
	gb := float64(bytes) / 1e9
	if gb <= 0 {
		return
	}
	if m.serverOK && now.serverOK {
		r.res.add(Metric{Key: key + "_server_cpu_ms_gb", Name: what + ": server CPU ms per GB", Unit: "ms/GB", Value: float64((now.server - m.server).Milliseconds()) / gb})
	}
	r.res.add(Metric{Key: "client_" + key + "_cpu_ms_gb", Name: fmt.Sprintf("%s: client CPU ms per GB (reference)", what), Unit: "ms/GB", Value: float64((now.client - m.client).Milliseconds()) / gb})
}

package scale

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
)

// writes counts one user's writes in a part of the API server's audit log.
type writes struct {
	All, Conflicts int
	// Leases are writes to Leases (the agents' renewals, leader election): a settled fleet's
	// only expected writes.
	Leases int
	// ByResource counts the other writes by resource and verb ("pods/patch").
	ByResource map[string]int
}

// auditEvent is what the harness reads of an audit event.
type auditEvent struct {
	Verb      string                    `json:"verb"`
	User      struct{ Username string } `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditWrites reads the audit log from offset and counts user's writes; it returns where it
// stopped.
func auditWrites(path string, offset int64, user string) (writes, int64, error) {
	w := writes{ByResource: map[string]int{}}
	f, err := os.Open(path)
	if err != nil {
		return w, offset, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return w, offset, err
	}
	rd := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			// A partial last line is read again the next time.
			break
		}
		offset += int64(len(line))
		var e auditEvent
		if json.Unmarshal(line, &e) != nil || e.User.Username != user || e.ObjectRef == nil {
			continue
		}
		switch e.Verb {
		case "get", "list", "watch":
			continue
		}
		w.All++
		if e.ResponseStatus != nil && e.ResponseStatus.Code == 409 {
			w.Conflicts++
		}
		if e.ObjectRef.Resource == "leases" {
			w.Leases++
			continue
		}
		res := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			res += "/" + e.ObjectRef.Subresource
		}
		w.ByResource[res+"/"+e.Verb]++
	}
	return w, offset, nil
}

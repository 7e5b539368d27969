package engine

import "testing"

// The URI escapes the password and the target, which may hold any character; the Secret's keys
// carry them unescaped.
func TestNewConnectionEscapesUserPartsAndTarget(t *testing.T) {
	c := NewConnection("postgresql", "db", "apps", 5432, "sb_app_0", "p@ss/w:rd", "database", `x"/y?z`, "sslmode=require")
	if want := `postgresql://sb_app_0:p%40ss%2Fw%3Ard@db.apps.svc:5432/x%22%2Fy%3Fz?sslmode=require`; c.URI != want {
		t.Errorf("uri %s, want %s", c.URI, want)
	}
	if c.Host != "db.apps.svc" || c.Port != 5432 || c.Extra["database"] != `x"/y?z` {
		t.Errorf("connection %+v", c)
	}
	if got := NewConnection("amqp", "mq", "apps", 5672, "u", "p", "vhost", "/", "").URI; got != "amqp://u:p@mq.apps.svc:5672/%2F" {
		t.Errorf("the default vhost: %s", got)
	}
}

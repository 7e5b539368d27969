package main

import (
	"fmt"
	"strings"
)

// nameKind is what a command's positional name names, for completion.
type nameKind int

const (
	instanceName nameKind = iota
	podName               // a pod of the instance named before it
	bindingName
	backupName
)

// command is one of the plugin's commands: how it is called, what it does, the names it takes
// (the first required ones) and the flags it reads besides the common ones. The usage, each
// command's --help and the completion all come from this table.
type command struct {
	name     string // "rollout status" is the one of two words
	synopsis string
	help     string
	names    []nameKind
	required int
	flags    []string
}

// commonFlags are read by every command that talks to the API server.
var commonFlags = []string{"-n", "--kubeconfig", "--context"}

var commandTable = []command{
	{name: "versions", synopsis: "versions [--engine ENGINE]", flags: []string{"--engine"},
		help: "lists every ServiceInstance by engine and version, with its support state and the days left before its version's sundown (from the engine's VersionCatalog)"},
	{name: "rollout status", synopsis: "rollout status",
		help: "lists the instances whose restart the operator holds back (a new agent waiting for the spec, a maintenance window or the fleet's pace: the message says which) and the paused ones"},
	{name: "status", synopsis: "status [INSTANCE] [-n NAMESPACE | -A] [--no-figures] [--scrape-token-secret NAMESPACE/NAME]",
		names: []nameKind{instanceName}, flags: []string{"-A", "--no-figures", "--scrape-token-secret"},
		help: "per instance (the one named, or every one of the namespace): phase, ready pods, primary, last backup's age, days to its version's sundown, pending restarts; per pod its role and state, and from its agent the replication lag and connections (read through a port-forward with the fleet's scrape token: needs get on that Secret, default datafleet-system/datafleet-scrape-token, and pods/portforward; --no-figures skips them)"},
	{name: "pause", synopsis: "pause INSTANCE", names: []nameKind{instanceName}, required: 1,
		help: "sets spec.paused: the operator changes nothing of the instance until it is resumed"},
	{name: "resume", synopsis: "resume INSTANCE", names: []nameKind{instanceName}, required: 1,
		help: "removes spec.paused: the operator applies what the spec asks, all at once"},
	{name: "switchover", synopsis: "switchover INSTANCE [POD]", names: []nameKind{instanceName, podName}, required: 1,
		help: "sets spec.primary: to POD, or to the lowest-numbered ready pod that is not the primary (engines with a primary: PostgreSQL)"},
	{name: "rotate", synopsis: "rotate BINDING", names: []nameKind{bindingName}, required: 1,
		help: "raises the binding's spec.rotation.generation: new credentials in its Secret, the previous ones valid for the rotation's overlap"},
	{name: "connect", synopsis: "connect BINDING [--client PSQL] [-- PSQL-ARGUMENTS...]", names: []nameKind{bindingName}, required: 1, flags: []string{"--client"},
		help: "opens psql (or --client) on a PostgreSQL binding's database as the binding's user, through a port-forward to the pod its Service sends clients to (the primary); the credentials reach psql in its environment from the binding's Secret and are never printed or put on a command line; with TLS the server's certificate is verified against the binding's CA. Needs get on the binding, its Secret, the Service and pods, and create on pods/portforward"},
	{name: "backup", synopsis: "backup INSTANCE [--name NAME] [--method Logical|Physical] [--wait [--timeout 30m]]",
		names: []nameKind{instanceName}, required: 1, flags: []string{"--name", "--method", "--wait", "--timeout"},
		help: "creates a Backup of the instance now (named after it and the time unless --name); --wait prints its phases, then its size, encryption and location, or fails with the reason"},
	{name: "restore", synopsis: "restore BACKUP --to INSTANCE [--version V] [--time RFC3339] [--name NAME] [--wait [--timeout 30m]]",
		names: []nameKind{backupName}, required: 1, flags: []string{"--to", "--version", "--time", "--name", "--wait", "--timeout"},
		help: "creates a Restore of the backup into a new instance (--version for a blue/green move, --time for a point in time of a physical backup); --wait follows it to its end. In place stays a Restore written by hand: it needs the instance's name typed again"},
	{name: "report", synopsis: "report INSTANCE [-o FILE] [--operator-namespace NAMESPACE]",
		names: []nameKind{instanceName}, required: 1, flags: []string{"-o", "--operator-namespace"},
		help: "writes a support bundle (a .tar.gz, default datafleet-report-NAMESPACE-INSTANCE-TIME.tar.gz): the instance, every object the operator made for it, its bindings, backups, restores and plans, their events, its pods' logs and the operator's log lines that name it; Secrets hold only their keys, and secret values and credentials are redacted in every file. What could not be read is listed in its README.txt"},
}

func findCommand(name string) *command {
	for i := range commandTable {
		if commandTable[i].name == name {
			return &commandTable[i]
		}
	}
	return nil
}

// usageText is every command's synopsis and help.
func usageText() string {
	var b strings.Builder
	for i, c := range commandTable {
		lead := "usage: "
		if i > 0 {
			lead = "       "
		}
		fmt.Fprintf(&b, "%skubectl datafleet %s\n", lead, c.synopsis)
	}
	b.WriteString("every command also takes -n NAMESPACE, --kubeconfig FILE and --context NAME; `kubectl datafleet help COMMAND` or COMMAND --help for one\n\n")
	for _, c := range commandTable {
		b.WriteString(wrap(c.name, c.help))
	}
	return b.String()
}

// helpText is one command's synopsis and help.
func (c *command) helpText() string {
	return fmt.Sprintf("usage: kubectl datafleet %s\n  (and -n NAMESPACE, --kubeconfig FILE, --context NAME)\n\n%s", c.synopsis, wrap(c.name, c.help))
}

// wrap sets text in a column after name, at 100 characters.
func wrap(name, text string) string {
	const indent, width = 17, 100
	var b strings.Builder
	line := fmt.Sprintf("%-*s", indent, name)
	for _, word := range strings.Fields(text) {
		if len(line)+1+len(word) > width && len(strings.TrimSpace(line)) > 0 {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = strings.Repeat(" ", indent)
		}
		if !strings.HasSuffix(line, " ") {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}

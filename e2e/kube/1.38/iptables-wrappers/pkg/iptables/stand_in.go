// Package iptables declares the names of sigs.k8s.io/iptables-wrappers/pkg/iptables that
// Kubernetes v1.38.0-beta.0's kubelet uses, and nothing behind them (../../README.md says why).
package iptables

import (
	"context"
	"time"
)

const refused = "sigs.k8s.io/iptables-wrappers is a stand-in here (e2e/kube/1.38/iptables-wrappers): " +
	"the kubelet must run with makeIPTablesUtilChains: false"

type (
	Chain        string
	Table        string
	Protocol     string
	RulePosition string
	Mode         string
)

const (
	TableFilter Table = "filter"
	TableMangle Table = "mangle"
	TableNAT    Table = "nat"

	ChainInput  Chain = "INPUT"
	ChainOutput Chain = "OUTPUT"

	Append  RulePosition = "-A"
	Prepend RulePosition = "-I"

	UseInstalledMode Mode = "installed"
)

// Interface has the methods the kubelet calls on a client.
type Interface interface {
	Protocol() Protocol
	IsIPv6() bool
	EnsureChain(ctx context.Context, table Table, chain Chain) (bool, error)
	EnsureRule(ctx context.Context, position RulePosition, table Table, chain Chain, args ...string) (bool, error)
	Monitor(ctx context.Context, canary Chain, tables []Table, reloadFunc func(), interval time.Duration)
}

// NewBestEffort is where the kubelet's iptables set-up starts: it never gets here.
func NewBestEffort(context.Context, Mode) map[Protocol]Interface { panic(refused) }

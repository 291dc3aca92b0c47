// Package filewatch re-reads a file when its contents change, by polling.
// It serves both a workload's policy file (trust.WatchPolicyFile) and the
// agent's config file, which are often ConfigMaps that Kubernetes replaces
// by a symlink swap, where inotify on the file misses the change.
//
// Watch compares contents, not modification times, so every change is
// seen, and delivers the first read, so a change made just before the
// watch started is not missed. It never delivers the same contents twice
// in a row.
package filewatch

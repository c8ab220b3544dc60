// Package packaging holds the Debian package of redundantd (build.sh, the systemd unit, the
// man pages, the bash completion, the maintainer scripts) and the tests that build, verify,
// install and remove it. It has no code of its own; see docs/packaging.md.
package packaging

// Package version holds the build's version, stamped by the Makefile with -ldflags.
package version

// Version is the release version of this build (the image tag); "dev" when built without the Makefile.
var Version = "dev"

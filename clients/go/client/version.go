package client

// Version is this module's release, shared with the server and the other
// clients. A release tags the repository clients/go/v<Version>, the tag the Go
// module proxy needs to serve github.com/runstatus/runstatus/clients/go.
const Version = "0.1.0"

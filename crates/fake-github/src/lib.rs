//! A stateful HTTP fake of GitHub's self-hosted runner REST API.

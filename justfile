# vmss-github-runner task runner. `just` lists the recipes.
# The tools (just itself included) are installed by scripts/test.sh into .tools/.

set shell := ["bash", "-euo", "pipefail", "-c"]

tools := justfile_directory() / ".tools/venv/bin"

# List the recipes.
default:
    @just --list

# Run the local demo: the real operator with an in-memory scale set and simulated VMs.
demo *ARGS:
    cargo run --release -p operator -- demo {{ARGS}}

# Every test tier, as CI runs them (after scripts/test.sh installed the tools).
ci: unit integration azurite-fallback e2e static

# Unit tests: no process, no network.
unit:
    cargo test --workspace --locked --lib --bins

# Integration tests (every operator/*/tests/*.rs and tests/*/tests/*.rs not named e2e_*): the router, Azurite (real
# queue service) and HTTP fakes on loopback.
integration:
    cargo test --workspace --locked $(for f in operator/*/tests/*.rs tests/*/tests/*.rs; do n="$(basename "$f" .rs)"; case "$n" in e2e_*) ;; *) printf -- '--test %s ' "$n" ;; esac; done)

# The busy-record and learned-state tests once more on the Node Azurite processes, the
# fallback for machines without a Docker daemon (the integration tier ran them in containers).
azurite-fallback:
    env -u AZURITE_QUEUE_URL -u AZURITE_BLOB_URL AZURITE_MODE=process cargo test --locked -p operator --test busy_record_azurite --test learned_state

# End-to-end (tests named e2e_*): the real binary, and the whole operator driving simulated VMs over HTTP.
e2e:
    cargo test --workspace --locked --test 'e2e_*'

# Static checks: formatting, clippy, shellcheck, Terraform (HCL, checkov), cloud-init schema,
# Packer templates, workflows (actionlint, zizmor).
static:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    {{tools}}/shellcheck -x scripts/*.sh .ci/run vm/*.sh vm/scaler/*.sh packer/*.sh packer/scripts/*.sh tests/support/runner-double/*.sh
    bash scripts/static-checks.sh

# Regenerate committed files: config schema, OpenAPI document, Terraform README tables.
generate:
    cargo run -q -p operator -- config schema > schema/operator-config.schema.json
    cargo run -q -p operator -- openapi > schema/openapi.json
    {{tools}}/python scripts/gen-terraform-docs.py

# e.g. just simulate --trace ../shared/traces/bitcoin-core-ci-stats_tasks_2025-09-04_to_2025-10-16.json.gz
# Replay a CI workload through the real operator on a virtual clock (docs/simulate.md).
simulate *ARGS:
    cargo run --release -q -p operator -- simulate {{ARGS}}

# Issue 16's goal run (docs/simulate.md, "The goal run"): the figures of docs/scaling-policy.md, the plot redrawn.
simulate-goal TRACE="../shared/traces/bitcoin-core-ci-stats_tasks_2025-09-04_to_2025-10-16.json.gz":
    cargo build --release -q -p operator
    ./target/release/operator simulate --goal --trace {{TRACE}} --report goal.html --plot docs/simulate-parking.svg

# Simulator figures (docs/benchmarks.md): free target 20/30/50 % on the bitcoin trace, then a 50-setting sweep.
simulate-bench TRACE="../shared/traces/bitcoin-core-ci-stats_tasks_2025-09-04_to_2025-10-16.json.gz":
    cargo build --release -q -p operator
    for p in 20 30 50; do ./target/release/operator simulate --trace {{TRACE}} --min 2 --max 60 --free-target "$p"; done
    ./target/release/operator simulate --trace {{TRACE}} --sweep

# Replay one fault-suite seed with its log in simulated time (docs/fault-suite.md).
fault-seed SEED:
    cargo run -q -p fault-suite -- --seed {{SEED}}

# Benchmarks with printed figures (hook throughput and latency, RSS at 1,000 instances).
bench:
    cargo bench -p operator --bench hooks

# Build the full runner image (actions/runner-images at the pinned release + our layer; about
# 2 hours) and publish it to the gallery. Needs packer, az login, PKR_VAR_* (see packer/build.sh).
image:
    bash packer/build.sh full

# Build the minimal runner image (Ubuntu + Docker + runner + boot scripts; minutes).
image-minimal:
    bash packer/build.sh minimal

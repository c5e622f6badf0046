#!/usr/bin/env bash
# Install the pinned Python tools used by the static checks into git-ignored
# virtual environments inside the checkout:
#   .tools/venv          python-hcl2, jsonschema, pytest, PyYAML, zizmor,
#                        actionlint (binary wheel), shellcheck, just
#   .tools/checkov-venv  checkov (own venv: its bc-python-hcl2 dependency
#                        installs a package named `hcl2` over python-hcl2's,
#                        and it pins packaging<24 while pytest needs >=24)
# `.tools/venv/bin/checkov` links to the checkov venv, so one PATH entry serves.
#
# Idempotent and fast when nothing changed: each venv keeps a stamp with the
# sha256 of its requirement and constraint files and the Python version; a
# matching stamp skips pip entirely. Versions live only in tools/*.txt.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${repo_root}/.tools"
python="${PYTHON:-python3}"

# install_venv NAME REQUIREMENTS CONSTRAINTS
install_venv() {
  local venv="${tools_dir}/$1" requirements="${repo_root}/$2" constraints="${repo_root}/$3"
  local stamp="${venv}/.installed.sha256" want
  want="$(cat "${requirements}" "${constraints}" | sha256sum | cut -d' ' -f1) $("${python}" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x "${venv}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    echo "install-python-tools: $1 is up to date"
    return 0
  fi
  echo "install-python-tools: installing $1 from $2 + $3"
  rm -rf "${venv}"
  "${python}" -m venv "${venv}"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-virtualenv -r "${requirements}" -c "${constraints}"
  printf '%s\n' "${want}" > "${stamp}"
}

mkdir -p "${tools_dir}"
install_venv venv tools/requirements.txt tools/constraints.txt
install_venv checkov-venv tools/checkov-requirements.txt tools/checkov-constraints.txt
ln -sf ../../checkov-venv/bin/checkov "${tools_dir}/venv/bin/checkov"

# Check the result: every tool the checks call must run.
for tool in pytest zizmor actionlint shellcheck just checkov; do
  if ! "${tools_dir}/venv/bin/${tool}" --version > /dev/null 2>&1; then
    echo "install-python-tools: ${tool} does not run from ${tools_dir}/venv/bin" >&2
    exit 1
  fi
done
"${tools_dir}/venv/bin/python" -c 'import hcl2, jsonschema, yaml' 
echo "install-python-tools: ready (${tools_dir}/venv/bin)"

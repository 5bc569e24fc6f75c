#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine (root or sudo): system packages when missing,
# then a virtualenv in .venv with guiagent and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  chromium            # the browser (Playwright's own is used instead when installed)
  xvfb xauth          # virtual X server for the desktop environment and tests
  xserver-xorg-core xserver-xorg-video-dummy x11-xserver-utils  # Xorg dummy: several RandR monitors
  xdotool             # window lookup and text input on X
  x11-apps            # xcalc, an unmodified X program the scenarios drive
  x11-utils xcvt      # xdpyinfo (is a display up?), cvt (RandR modes for the dummy driver)
  libgl1              # OpenCV (brought by rapidocr-onnxruntime) needs it on a bare machine
  fonts-dejavu-core   # the font test pages and the demo web app pin ("DejaVu Sans"), and generated test frames
  fonts-liberation2   # a second sans-serif font: replay is tested after a change of default font
  espeak-ng           # speech for narration
  at-spi2-core dbus-x11  # the desktop accessibility bus (narration reads apps' AT-SPI trees)
  libatk-adaptor      # GTK 3's bridge onto that bus
  python3-gi gir1.2-atspi-2.0  # AT-SPI from Debian's python3 (the narrator's helper process)
  gir1.2-gtk-3.0      # GTK 3 for Debian's python3: the GTK form tests/apps/gtk_form.py (typed-text checks through AT-SPI)
  zenity galculator   # real GTK applications the AT-SPI tests, the narration bench and tests/test_thirdparty_apps.py use
  ffmpeg              # MP4 export
)
PYTHON="${PYTHON:-python3}"
# Debian's own python needs these as packages; a python built elsewhere (pyenv) carries them
$PYTHON -c "import ensurepip, venv" 2>/dev/null || DEBIAN_PACKAGES+=(python3-venv)
$PYTHON -c "import tkinter" 2>/dev/null || DEBIAN_PACKAGES+=(python3-tk)
# npm installs the third-party web app below; a machine with Node.js from elsewhere has it
command -v npm >/dev/null 2>&1 || DEBIAN_PACKAGES+=(npm)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  $PYTHON -m venv .venv
fi
# extras to install: GUIAGENT_EXTRAS=dev,scale adds sglang-router (.ci/run does)
EXTRAS="${GUIAGENT_EXTRAS:-dev}"
stamp=.venv/.guiagent-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$EXTRAS" ]; then
  echo "setup: installing guiagent[$EXTRAS] and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$EXTRAS" > "$stamp"
fi
# a third-party web app, shipped built in an npm package, never copied into the repository:
# tests/test_thirdparty_apps.py serves it locally (the folder is git-ignored)
SWAGGER_UI=swagger-ui-dist@5.35.0
if [ ! -f .thirdparty/npm/node_modules/swagger-ui-dist/swagger-ui-bundle.js ]; then
  echo "setup: installing $SWAGGER_UI into .thirdparty/npm"
  npm install --prefix .thirdparty/npm --no-audit --no-fund --no-save "$SWAGGER_UI" >/dev/null
fi
echo "setup: ready (.venv/bin/guiagent)"

#!/bin/sh
# Docker secrets arrive as files (/run/secrets/NAME). For every environment variable VAR_FILE
# that names a readable file, export VAR with the file's content (trailing newline stripped),
# so that DATABASE_URL_FILE=/run/secrets/database_url gives the exporters their DSN without the
# password ever being in the compose file, the image or `docker inspect`.
set -eu
for var in $(env | sed -n 's/^\([A-Z_][A-Z0-9_]*\)_FILE=.*/\1/p'); do
    file=$(printenv "${var}_FILE")
    if [ -r "$file" ]; then
        export "$var=$(cat "$file")"
        unset "${var}_FILE"
    else
        echo "entrypoint: ${var}_FILE=$file is not readable" >&2
        exit 2
    fi
done
exec "$@"

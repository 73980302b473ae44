ARG A=${B:+x}
ARG B=${A#*}
FROM ${A}${B}alpine

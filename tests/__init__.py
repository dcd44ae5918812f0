import signal

# A test run started in the background by a shell without job control
# (`cmd &`) inherits SIGINT ignored, and so would every process the tests
# start: the tool (Python leaves an ignored SIGINT ignored) and docker. The
# interrupt tests need what a terminal's Ctrl-C meets.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

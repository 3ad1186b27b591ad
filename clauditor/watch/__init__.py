"""`clauditor watch`: the live terminal view of /watch (dashboard, plain lines, tmux).

Rendering (render.py) is a pure function of the folded state (state.py); the network
client (client.py) is separate and only hands events over.
"""

"""The peer's graph: one node that does nothing. Only the thread endpoints are measured."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    note: str


def noop(state: State) -> dict:
    return {}


builder = StateGraph(State)
builder.add_node("noop", noop)
builder.add_edge(START, "noop")
builder.add_edge("noop", END)
graph = builder.compile()

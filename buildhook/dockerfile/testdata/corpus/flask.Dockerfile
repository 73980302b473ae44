FROM localhost:5000/python:3.8
RUN pip install flask

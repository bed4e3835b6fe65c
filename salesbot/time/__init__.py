"""Time as leads write it and as the business keeps it: free text to a time or a range (parse.py,
words.py) and the calendar of free slots (slots.py). Pure functions; the clock is passed in."""

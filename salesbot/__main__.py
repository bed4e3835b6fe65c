from salesbot.cli import main

main()
